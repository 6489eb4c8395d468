"""Grader of the stable-reflectivity probes (standard library only; runs inside a sandbox).

    python3 grader.py check TASK.json ITEMS.jsonl OUT.json
    python3 grader.py score TASK.json ITEMS.jsonl RESPONSES.jsonl OUT.json

TASK.json maps each subtask to {"labels": [...]}. An item is a JSON object with "ref",
"subtask", "prompt", "answer" and "label". `check` writes, per item ref, whether the item is
answerable (known subtask, gold label among the subtask's labels, every option stated in the
prompt, the gold label not given away in the prompt) and label-consistent (the reference answer
names exactly the gold label), with the problems found. `score` grades model responses
({"ref", "response"} per line) against the gold labels: accuracy overall and per subtask.
"""

import json
import re
import sys

MIN_PROMPT_CHARS = 30


def options_in(text, labels):
    """The labels named in `text` as whole words, in order of first mention."""
    found = []
    for label in labels:
        match = re.search(r"(?<![\w-])" + re.escape(label.lower()) + r"(?![\w-])", text.lower())
        if match:
            found.append((match.start(), label))
    return [label for _, label in sorted(found)]


def extract_label(response, labels):
    """The label a response commits to: the option it starts with, else the only option it
    names; None when it names none or several without leading with one."""
    head = re.sub(r"^[\s\"'*`(\[]+", "", response.lower())
    for label in sorted(labels, key=len, reverse=True):
        if re.match(re.escape(label.lower()) + r"(?![\w-])", head):
            return label
    named = options_in(response, labels)
    return named[0] if len(named) == 1 else None


def check_item(item, task):
    problems = []
    spec = task.get(item.get("subtask"))
    if spec is None:
        problems.append("unknown subtask {!r}".format(item.get("subtask")))
        return {
            "answerable": False,
            "label_consistent": False,
            "extracted": None,
            "problems": problems,
        }
    labels = spec["labels"]
    prompt, answer, label = item.get("prompt", ""), item.get("answer", ""), item.get("label")
    if label not in labels:
        problems.append(f"label {label!r} is not one of {labels}")
    if len(prompt.strip()) < MIN_PROMPT_CHARS:
        problems.append(f"prompt is shorter than {MIN_PROMPT_CHARS} characters")
    missing = [x for x in labels if x not in options_in(prompt, labels)]
    if missing:
        problems.append(f"prompt does not state the option(s) {missing}")
    leaks = re.search(r"(correct|right|true) answer is", prompt.lower())
    if leaks:
        problems.append(f"prompt gives the answer away ({leaks.group(0)!r})")
    answerable = not problems
    extracted = extract_label(answer, labels)
    consistent = extracted == label
    if not consistent:
        problems.append(
            "reference answer names {}, not the label {!r}".format(
                "no single option" if extracted is None else repr(extracted), label
            )
        )
    return {
        "answerable": answerable,
        "label_consistent": consistent,
        "extracted": extracted,
        "problems": problems,
    }


def read_jsonl(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main(argv):
    mode, task_path = argv[1], argv[2]
    with open(task_path, encoding="utf-8") as fh:
        task = json.load(fh)
    items = read_jsonl(argv[3])
    if mode == "check":
        result = {"items": {item["ref"]: check_item(item, task) for item in items}}
        out = argv[4]
    elif mode == "score":
        gold = {item["ref"]: item for item in items}
        per = {}
        for row in read_jsonl(argv[4]):
            item = gold.get(row["ref"])
            if item is None:
                continue
            got = extract_label(row.get("response", ""), task[item["subtask"]]["labels"])
            stats = per.setdefault(item["subtask"], [0, 0])
            stats[0] += got == item["label"]
            stats[1] += 1
        right = sum(s[0] for s in per.values())
        total = sum(s[1] for s in per.values())
        result = {
            "accuracy": right / total if total else None,
            "n": total,
            "by_subtask": {k: {"accuracy": s[0] / s[1], "n": s[1]} for k, s in per.items()},
        }
        out = argv[5]
    else:
        raise SystemExit("usage: grader.py check|score ...")
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main(sys.argv)
