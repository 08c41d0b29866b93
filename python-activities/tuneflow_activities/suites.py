"""Evaluation suites (the spec's evaluate.suites; shapes in src/quality/suites.ts): task metrics on the answers of the
base model and of the adapter to reference prompts, so that a gate can ask for a better model, not only a lower loss.

References: the rows of evaluate.references_path ({"prompt", "reference"} per line, the prompt sent as one user turn
through the model's chat template), else the run's validation rows: the tokens before a row's first response are
the prompt, exactly as training rendered it, and that response is the reference. Every suite scores the same
greedy answers, generated once per model.

A judge scores a pair: the candidate's answers against an opponent's. In a run the adapter is the candidate and its
base the opponent. In retraining the champion's evaluation receives the challenger's answers (its own evaluation's
`answers`, by reference row) and judges them against the champion's, the adapter there: the challenger stays the
candidate and the champion is the opponent, so no model answers twice.
"""

import inspect
import json
import math
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .contract import FailureType
from .errors import failure
from .payloads import ChallengerAnswers, Spec

GENERATION_BATCH_SIZE = 8
EXAMPLES_KEPT = 5
WILSON_Z = 1.96  # 95%


@dataclass(frozen=True)
class ReferenceRow:
    # Where the row is in its source (the validation split's example, the references file's line): the same for
    # every model that scores the source, whatever its tokenizer, so two models' answers pair up by it.
    row: int
    prompt: str
    prompt_ids: list[int]
    reference: str


def validation_references(split, tokenizer, limit: int, rows_per_example: int = 1) -> list[ReferenceRow]:
    """Each validation row's prompt (its tokens before the first response) and that response as the reference. A
    preference pair is stored as two rows, prompt + chosen then prompt + rejected (`rows_per_example` 2): the chosen
    response is the reference."""
    rows: list[ReferenceRow] = []
    for index in range(0, len(split), rows_per_example):
        if len(rows) == limit:
            break
        start, end = int(split.offsets[index]), int(split.offsets[index + 1])
        responses = split.responses[start:end]
        first = int(responses.argmax())
        if not responses[first] or first == 0:
            continue  # no response, or a text row (all response): no prompt to answer
        rest = responses[first:]
        length = len(rest) if rest.all() else int((~rest).argmax())
        ids = [int(token) for token in split.input_ids[start:end]]
        rows.append(
            ReferenceRow(
                row=index // rows_per_example,
                prompt=tokenizer.decode(ids[:first], skip_special_tokens=True).strip(),
                prompt_ids=ids[:first],
                reference=tokenizer.decode(ids[first : first + length], skip_special_tokens=True).strip(),
            )
        )
    return rows


def file_references(path: Path, tokenizer, limit: int) -> list[ReferenceRow]:
    """The references file's rows; a row that is not {"prompt": str, "reference": str} fails naming its line."""
    rows: list[ReferenceRow] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise failure(FailureType.DATASET_NOT_FOUND, f"evaluate.references_path {path}: {error}", path=str(path)) from error
    for number, line in enumerate(lines, start=1):
        if len(rows) == limit:
            break
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise failure(FailureType.INVALID_DATASET, f"{path}:{number}: not JSON ({error})", path=str(path), line=number) from error
        for field in ("prompt", "reference"):
            if not isinstance(row, dict) or not isinstance(row.get(field), str):
                raise failure(FailureType.INVALID_DATASET, f"{path}:{number}: field {field!r} must be a string", path=str(path), line=number, field=field)
        encoded = tokenizer.apply_chat_template([{"role": "user", "content": row["prompt"]}], add_generation_prompt=True, tokenize=True, return_dict=True)
        rows.append(ReferenceRow(row=number, prompt=row["prompt"], prompt_ids=[int(token) for token in encoded["input_ids"]], reference=row["reference"]))
    return rows


def generate_answers(model, tokenizer, prompts: list[list[int]], max_new_tokens: int, device: str) -> list[str]:
    """Greedy answers, a batch at a time, left-padded so every prompt ends where its answer starts."""
    import torch

    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers: list[str] = []
    for start in range(0, len(prompts), GENERATION_BATCH_SIZE):
        batch = prompts[start : start + GENERATION_BATCH_SIZE]
        width = max(len(ids) for ids in batch)
        input_ids = torch.tensor([[pad_token_id] * (width - len(ids)) + ids for ids in batch], device=device)
        attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
        with torch.no_grad():
            output = model.generate(
                input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_token_id
            )
        answers.extend(tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in output)
    return answers


def _fraction(count: int, total: int) -> float | None:
    return count / total if total else None


def _normalise(case_sensitive: bool):
    return (lambda text: text.strip()) if case_sensitive else (lambda text: text.strip().casefold())


def exact_match_scores(answers: list[str], references: list[str], case_sensitive: bool) -> dict:
    fold = _normalise(case_sensitive)
    return {"exact_match": _fraction(sum(fold(answer) == fold(reference) for answer, reference in zip(answers, references, strict=True)), len(answers))}


def contains_scores(answers: list[str], references: list[str], case_sensitive: bool) -> dict:
    fold = _normalise(case_sensitive)
    return {"contains": _fraction(sum(fold(reference) in fold(answer) for answer, reference in zip(answers, references, strict=True)), len(answers))}


def _parse_json(text: str):
    try:
        return True, json.loads(text)
    except json.JSONDecodeError:
        return False, None


def load_json_schema(suite: dict) -> dict | None:
    if suite.get("schema") is not None:
        return suite["schema"]
    if suite.get("schema_path") is None:
        return None
    path = Path(suite["schema_path"])
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise failure(FailureType.INVALID_SPEC, f"evaluate.suites json schema_path {path}: {error}", path=str(path)) from error


def json_scores(answers: list[str], references: list[str], schema: dict | None, fields: list[str] | None) -> dict:
    """parse_rate: answers that parse as JSON; schema_valid_rate: that also validate against the schema;
    field_accuracy: over every (row, field) of the references, the share the answer has equal (a missing field or
    an unparsable answer counts as wrong). A reference that is not a JSON object contributes no fields."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema) if schema is not None else None
    if schema is not None:
        jsonschema.Draft202012Validator.check_schema(schema)
    parsed = valid = matched = compared = 0
    for answer, reference_text in zip(answers, references, strict=True):
        parses, value = _parse_json(answer)
        parsed += parses
        valid += parses and (validator is None or validator.is_valid(value))
        reference_parses, reference = _parse_json(reference_text)
        if not reference_parses or not isinstance(reference, dict):
            continue
        for field in fields if fields is not None else list(reference):
            compared += 1
            matched += isinstance(value, dict) and field in value and field in reference and value[field] == reference[field]
    return {"parse_rate": _fraction(parsed, len(answers)), "schema_valid_rate": _fraction(valid, len(answers)), "field_accuracy": _fraction(matched, compared)}


def diversity_scores(answers: list[str]) -> dict:
    """distinct_ratio: distinct answers over answers; most_common_share: the most frequent answer's share."""
    if not answers:
        return {"distinct_ratio": None, "most_common_share": None}
    counts = Counter(answer.strip() for answer in answers)
    return {"distinct_ratio": len(counts) / len(answers), "most_common_share": counts.most_common(1)[0][1] / len(answers)}


def wilson_interval(successes: float, total: int, z: float = WILSON_Z) -> tuple[float, float]:
    """The Wilson score interval of a proportion: sound at small counts and at 0 or 1, unlike the normal one."""
    if total == 0:
        return 0.0, 1.0
    proportion = successes / total
    denominator = 1 + z * z / total
    centre = (proportion + z * z / (2 * total)) / denominator
    half = z * math.sqrt(proportion * (1 - proportion) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


JUDGE_PROMPT = """You compare two answers to the same instruction. {criteria}

Instruction:
{prompt}

Answer A:
{first}

Answer B:
{second}

Reply with one letter: A if answer A is better, B if answer B is better."""


class LocalJudge:
    """A causal LM on this worker: the verdict is whichever of the tokens "A" and "B" it finds likelier next."""

    def __init__(self, source: str, device: str):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .models import resolve_model_directory

        directory = resolve_model_directory(source).directory
        self.tokenizer = AutoTokenizer.from_pretrained(str(directory))
        # transformers declares PreTrainedModel.to through a decorator pyright reads as taking no device.
        self.model = AutoModelForCausalLM.from_pretrained(str(directory)).to(device).eval()  # pyright: ignore[reportArgumentType]
        self.device = device
        self.choices = [self.tokenizer.encode(letter, add_special_tokens=False)[0] for letter in ("A", "B")]
        # Only the last position's logits, where the model's forward can say so (transformers' causal LMs do): the
        # verdict is the next token, and projecting every other position onto the vocabulary (49k columns for SmolLM2)
        # was a fifth of a verdict's CPU. Equal to the full forward's last row up to float rounding (one row projected
        # instead of all: measured 4e-5 of logits near 30; the same verdicts).
        self.last_logits_only = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(self.model.forward).parameters else {}

    def prefers(self, text: str) -> str:
        import torch

        encoded = self.tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            logits = self.model(**{key: value.to(self.device) for key, value in encoded.items()}, **self.last_logits_only).logits[0, -1]
        first, second = (float(logits[token]) for token in self.choices)
        return "A" if first > second else "B" if second > first else "tie"


class EndpointJudge:
    """An OpenAI-compatible chat completions endpoint, asked at temperature 0 for one letter."""

    def __init__(self, endpoint: dict):
        import os

        self.url = endpoint["url"].rstrip("/") + "/chat/completions"
        self.model = endpoint["model"]
        key_variable = endpoint.get("api_key_env")
        self.api_key = os.environ.get(key_variable) if key_variable else None
        if key_variable and not self.api_key:
            raise failure(
                FailureType.INVALID_SPEC, f"judge endpoint: environment variable {key_variable} (api_key_env) is not set on the worker", field="api_key_env"
            )

    def prefers(self, text: str) -> str:
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": text}], "temperature": 0, "max_tokens": 1}).encode()
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})}
        with urllib.request.urlopen(urllib.request.Request(self.url, data=body, headers=headers), timeout=120) as response:
            reply = json.loads(response.read())
        content = reply["choices"][0]["message"]["content"].strip().upper()
        return content[0] if content[:1] in ("A", "B") else "tie"


def judge_scores(judge, criteria: str, prompts: list[str], candidate: list[str], opponent: list[str]) -> dict:
    """Each row judged twice, the candidate first then second: a judge that always picks one position scores a tie,
    so order bias cancels. A row scores 1 (won both), 0.5 (split, or ties) or 0; win_rate is the mean, with its
    Wilson interval over the rows."""
    score = 0.0
    for prompt, ours, theirs in zip(prompts, candidate, opponent, strict=True):
        forward = judge.prefers(JUDGE_PROMPT.format(criteria=criteria, prompt=prompt, first=ours, second=theirs))
        backward = judge.prefers(JUDGE_PROMPT.format(criteria=criteria, prompt=prompt, first=theirs, second=ours))
        score += ({"A": 1.0, "B": 0.0}.get(forward, 0.5) + {"B": 1.0, "A": 0.0}.get(backward, 0.5)) / 2
    if not prompts:
        return {"win_rate": None, "win_rate_lower": None, "win_rate_upper": None}
    lower, upper = wilson_interval(score, len(prompts))
    return {"win_rate": score / len(prompts), "win_rate_lower": lower, "win_rate_upper": upper}


def suite_name(suite: dict) -> str:
    return suite.get("name") or suite["kind"]


def score_suite(suite: dict, rows: list[ReferenceRow], base: list[str], tuned: list[str]) -> dict:
    """One suite's result of a single model's kind: its scores of base and adapter."""
    references = [row.reference for row in rows]
    kind = suite["kind"]
    if kind == "exact_match":
        score = lambda answers: exact_match_scores(answers, references, suite["case_sensitive"])  # noqa: E731
    elif kind == "contains":
        score = lambda answers: contains_scores(answers, references, suite["case_sensitive"])  # noqa: E731
    elif kind == "json":
        schema = load_json_schema(suite)
        score = lambda answers: json_scores(answers, references, schema, suite.get("fields"))  # noqa: E731
    elif kind == "diversity":
        score = diversity_scores
    else:
        raise failure(FailureType.INVALID_SPEC, f"evaluate.suites: unknown kind {kind!r}", kind=kind)
    return {"name": suite_name(suite), "kind": kind, "base": score(base), "tuned": score(tuned)}


@dataclass(frozen=True)
class JudgePairing:
    """What a judge suite compares: the candidate's answer to each reference row (by ReferenceRow.row), the
    opponent's answers to this evaluation's rows in order, and who the opponent is (src/quality/suites.ts's
    JudgeOpponent)."""

    candidate: dict[int, str]
    opponent_answers: list[str]
    opponent: dict


def judge_suite(suite: dict, rows: list[ReferenceRow], pairing: JudgePairing, device: str) -> dict:
    """A judge suite's result: the candidate's win rate against the opponent on the rows both answered. `tuned`
    holds the candidate's scores (the adapter's in a run, the challenger's in a champion's evaluation)."""
    paired = [(row, theirs) for row, theirs in zip(rows, pairing.opponent_answers, strict=True) if row.row in pairing.candidate]
    prompts = [row.prompt for row, _ in paired]
    candidate = [pairing.candidate[row.row] for row, _ in paired]
    opponent = [theirs for _, theirs in paired]
    judge = LocalJudge(suite["model"], device) if suite.get("model") else EndpointJudge(suite["endpoint"])
    scores = judge_scores(judge, suite["criteria"], prompts, candidate, opponent)
    return {"name": suite_name(suite), "kind": "judge", "base": None, "tuned": scores, "opponent": pairing.opponent}


def run_suites(spec: Spec, model, tokenizer, split, device: str, challenger: ChallengerAnswers | None = None) -> dict | None:
    """The evaluate activity's hook: every suite of the spec on base and adapter, or None when it declares none. A
    judge compares the adapter with its base; given the challenger's answers (retraining scores the champion), it
    compares the challenger's with the adapter's, the champion's."""
    evaluate_spec = spec.evaluate
    if not evaluate_spec.suites:
        return None
    limit = evaluate_spec.suite_rows
    references_path = evaluate_spec.references_path
    rows_per_example = 2 if spec.train.objective.kind == "dpo" else 1
    rows = file_references(Path(references_path), tokenizer, limit) if references_path else validation_references(split, tokenizer, limit, rows_per_example)
    prompts = [row.prompt_ids for row in rows]
    max_new_tokens = evaluate_spec.max_new_tokens
    with model.disable_adapter():
        base = generate_answers(model, tokenizer, prompts, max_new_tokens, device)
    tuned = generate_answers(model, tokenizer, prompts, max_new_tokens, device)
    pairing = (
        JudgePairing({row.row: answer for row, answer in zip(rows, tuned, strict=True)}, base, {"kind": "base"})
        if challenger is None
        else JudgePairing({answer.row: answer.answer for answer in challenger.answers}, tuned, {"kind": "champion", "version": challenger.champion_version})
    )
    judged = any(suite["kind"] == "judge" for suite in evaluate_spec.suites)
    results = [
        judge_suite(suite, rows, pairing, device) if suite["kind"] == "judge" else score_suite(suite, rows, base, tuned) for suite in evaluate_spec.suites
    ]
    return {
        "rows": len(rows),
        "references": references_path or "validation",
        "results": results,
        "examples": [
            {"prompt": row.prompt, "reference": row.reference, "base": base_answer, "tuned": tuned_answer}
            for row, base_answer, tuned_answer in list(zip(rows, base, tuned, strict=True))[:EXAMPLES_KEPT]
        ],
        # What a champion's evaluation judges this adapter's answers with, in retraining.
        **({"answers": [{"row": row.row, "answer": answer} for row, answer in zip(rows, tuned, strict=True)]} if judged else {}),
    }
