# Sourced by demo.sh and test.sh: how llama-cpp-python (the `local` extra) is compiled.
# Not for the build machine's exact CPU (-march=native, llama.cpp's default): some machines of
# this kind advertise AMX, which the guest kernel does not enable, and a native build then dies
# with SIGILL (invalid opcode in libggml-cpu) at the first matrix multiply. AVX2/FMA/F16C run
# on every x86-64 server of the last decade and are plenty for the embedded 135M model.
# A wheel already in pip's cache is reused as built: `pip cache remove llama_cpp_python` first.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}"
