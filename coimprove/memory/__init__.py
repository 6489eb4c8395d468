"""Agent memory of review: past decisions, notes and edits recalled for an agent's new task.

```python
from coimprove.memory import MemoryConfig

async with Runner(db, memory=MemoryConfig(k=3)) as runner:   # or start(..., memory=...)
    ...
```

Agent roles put the recalled notes in their prompt (a "Notes from past reviews" section); a
plain agent function can call ``ctx.recall(text)``. The proposal records the ids of the notes
it was given (`Proposal.recalled`), and the run records its memory settings, so the effect of
memory can be ablated and measured (`coimprove.metrics.agent_learning`).
"""

from coimprove.embeddings import (
    Embedder,
    EmbeddingError,
    WordLlamaEmbedder,
    resolve_embedder,
)
from coimprove.memory.notes import MemoryConfig, ReviewNote
from coimprove.memory.store import Recall, ReviewMemory, note_from_rows

__all__ = [
    "Embedder",
    "EmbeddingError",
    "MemoryConfig",
    "Recall",
    "ReviewMemory",
    "ReviewNote",
    "WordLlamaEmbedder",
    "note_from_rows",
    "resolve_embedder",
]
