import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tuneflow_activities.data import tokenize_split
from tuneflow_activities.models import SMOLLM2_135M_INSTRUCT, TINY_RANDOM_LLAMA, resolve_model_directory
from tuneflow_activities.suites import (
    JUDGE_PROMPT,
    EndpointJudge,
    LocalJudge,
    contains_scores,
    diversity_scores,
    exact_match_scores,
    file_references,
    json_scores,
    judge_scores,
    validation_references,
    wilson_interval,
)

PERSON_SCHEMA = {
    "type": "object",
    "required": ["name", "age"],
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
}


def test_json_scores_parse_validate_and_match_fields():
    references = ['{"name": "Ada", "age": 36}'] * 4
    answers = [
        '{"name": "Ada", "age": 36}',  # parses, valid, 2/2 fields
        '{"name": "Ada", "age": "36"}',  # parses, invalid (age a string), 1/2 fields
        '{"name": "Bob"}',  # parses, invalid (age missing), 0/2 fields
        "name: Ada",  # does not parse, 0/2
    ]
    scores = json_scores(answers, references, PERSON_SCHEMA, None)
    assert scores == {"parse_rate": 0.75, "schema_valid_rate": 0.25, "field_accuracy": 3 / 8}
    # Only the named fields count; without a schema, valid means parses.
    assert json_scores(answers, references, None, ["name"]) == {"parse_rate": 0.75, "schema_valid_rate": 0.75, "field_accuracy": 0.5}


def test_diversity_fails_constant_answers_and_passes_varied_ones():
    assert diversity_scores(["same"] * 9 + ["other"]) == {"distinct_ratio": 0.2, "most_common_share": 0.9}
    assert diversity_scores(["a", "b", "c", "d"]) == {"distinct_ratio": 1.0, "most_common_share": 0.25}
    assert diversity_scores([]) == {"distinct_ratio": None, "most_common_share": None}


def test_exact_match_and_contains():
    answers, references = [" Paris ", "paris", "It is Paris."], ["Paris"] * 3
    assert exact_match_scores(answers, references, True) == {"exact_match": 1 / 3}
    assert exact_match_scores(answers, references, False) == {"exact_match": 2 / 3}
    assert contains_scores(answers, references, True) == {"contains": 2 / 3}
    assert contains_scores(answers, references, False) == {"contains": 1.0}


def test_wilson_interval_matches_the_textbook_values():
    lower, upper = wilson_interval(8, 10)
    assert lower == pytest.approx(0.4902, abs=1e-4) and upper == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0


class PositionBiasedJudge:
    """Prefers whatever comes first: the bias position swapping must cancel."""

    def prefers(self, text: str) -> str:
        return "A"


def test_position_swapping_cancels_a_judge_that_always_picks_the_first_answer():
    scores = judge_scores(PositionBiasedJudge(), "better?", ["q1", "q2", "q3"], ["good"] * 3, ["bad"] * 3)
    assert scores["win_rate"] == 0.5
    assert scores["win_rate_lower"] < 0.5 < scores["win_rate_upper"]


def test_validation_references_are_the_prompt_as_trained_and_the_first_assistant_turn():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_directory(TINY_RANDOM_LLAMA).directory))
    rows = [
        {"kind": "chat", "messages": [{"role": "user", "content": "Name a city."}, {"role": "assistant", "content": '{"city": "Oslo"}'}]},
        {"kind": "text", "text": "no prompt here"},
        {"kind": "completion", "prompt": "2 + 2 =", "completion": " 4"},
    ]
    split = tokenize_split(rows, tokenizer)
    references = validation_references(split, tokenizer, limit=10)
    assert [reference.reference for reference in references] == ['{"city": "Oslo"}', "4"]
    chat_prompt = tokenizer.apply_chat_template(rows[0]["messages"][:1], add_generation_prompt=True, tokenize=False)
    assert tokenizer.decode(references[0].prompt_ids) == chat_prompt
    assert validation_references(split, tokenizer, limit=1)[0].reference == '{"city": "Oslo"}'


PROMPTS = ["What is the capital of France?", "How many legs does a spider have?", "Name a primary colour."]
GOOD = ["The capital of France is Paris.", "A spider has eight legs.", "Red is a primary colour."]
BAD = ["Bananas.", "I do not know what a spider is.", "Tuesday."]


@pytest.fixture(scope="module")
def local_judge():
    return LocalJudge(SMOLLM2_135M_INSTRUCT, "cpu")


@pytest.fixture(scope="module")
def good_against_bad(local_judge) -> dict:
    """The local judge's scores of GOOD against BAD: computed once, read by both tests that need them."""
    return judge_scores(local_judge, "Which answer is correct?", PROMPTS, GOOD, BAD)


def test_a_local_judge_model_scores_both_orders_so_the_two_sides_sum_to_one(local_judge, good_against_bad):
    ours = good_against_bad
    theirs = judge_scores(local_judge, "Which answer is correct?", PROMPTS, BAD, GOOD)
    assert ours["win_rate"] + theirs["win_rate"] == pytest.approx(1.0)
    assert 0 <= ours["win_rate_lower"] <= ours["win_rate"] <= ours["win_rate_upper"] <= 1


def test_the_local_judge_projects_only_the_last_position_and_reads_the_full_forwards_verdict(local_judge):
    import torch

    text = JUDGE_PROMPT.format(criteria="Which answer is correct?", prompt=PROMPTS[0], first=GOOD[0], second=BAD[0])
    encoded = local_judge.tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        full = local_judge.model(**encoded).logits
        last = local_judge.model(**encoded, **local_judge.last_logits_only).logits
    assert full.shape[1] == encoded["input_ids"].shape[1] and last.shape[1] == 1
    # The same row up to float rounding (one row projected onto the vocabulary instead of all), so the same verdict.
    assert torch.allclose(last[0, -1], full[0, -1], rtol=0, atol=1e-4)
    first, second = (float(full[0, -1, token]) for token in local_judge.choices)
    assert local_judge.prefers(text) == ("A" if first > second else "B")


def test_an_openai_compatible_endpoint_judges_like_the_model_behind_it(local_judge, good_against_bad):
    """A chat completions server on 127.0.0.1 answering with the real local model's choice: the endpoint judge must
    send the judge prompt through and read the letter back, giving the same scores as the model judged locally."""

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body["model"], self.headers.get("Authorization")))
            letter = local_judge.prefers(body["messages"][0]["content"])
            reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": letter if letter != "tie" else "="}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *arguments):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        import os

        os.environ["TEST_JUDGE_KEY"] = "secret"
        endpoint = EndpointJudge({"url": f"http://127.0.0.1:{server.server_port}/v1", "model": "smollm2", "api_key_env": "TEST_JUDGE_KEY"})
        remote = judge_scores(endpoint, "Which answer is correct?", PROMPTS, GOOD, BAD)
    finally:
        server.shutdown()
    assert remote == good_against_bad
    assert seen[0] == ("/v1/chat/completions", "smollm2", "Bearer secret")
    assert len(seen) == 2 * len(PROMPTS)


def test_a_references_file_gives_chat_prompts_and_names_a_bad_row(tmp_path):
    from temporalio.exceptions import ApplicationError
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_directory(TINY_RANDOM_LLAMA).directory))
    path = tmp_path / "references.jsonl"
    path.write_text(json.dumps({"prompt": "Name a city.", "reference": "Oslo"}) + "\n\n" + json.dumps({"prompt": "x", "reference": 3}) + "\n")
    [row] = file_references(path, tokenizer, limit=1)
    assert row.reference == "Oslo"
    assert tokenizer.decode(row.prompt_ids) == tokenizer.apply_chat_template(
        [{"role": "user", "content": "Name a city."}], add_generation_prompt=True, tokenize=False
    )
    with pytest.raises(ApplicationError, match=r"references\.jsonl:3: field 'reference' must be a string"):
        file_references(path, tokenizer, limit=10)


@pytest.fixture(scope="module")
def champion_adapter(tmp_path_factory, tiny_model_uri) -> str:
    """A champion's adapter on the tiny model: LoRA weights initialised at random, so the champion answers unlike its base."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tuneflow_activities.artifacts import uri_to_path

    directory = tmp_path_factory.mktemp("champion") / "adapter"
    base = AutoModelForCausalLM.from_pretrained(str(uri_to_path(tiny_model_uri)))
    get_peft_model(base, LoraConfig(r=8, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)).save_pretrained(str(directory))
    return directory.as_uri()


def test_a_champions_evaluation_judges_the_challengers_answers_against_its_own(spec, setup, tokens, tiny_model_uri, champion_adapter, local_judge, tmp_path):
    """Retraining: the champion's evaluation receives the challenger's answers by reference row and judges them (the
    candidate) against the champion's own answers (the opponent), position-swapped, on the rows both answered; a
    run's judge compares the adapter with its base. Both results say which opponent they are against."""
    from tuneflow_activities.contract import AcceleratorActivity
    from tuneflow_activities.evaluation import evaluate
    from tuneflow_activities.validation import validate_request, validate_result

    references = tmp_path / "references.jsonl"
    references.write_text("".join(json.dumps({"prompt": prompt, "reference": good}) + "\n" for prompt, good in zip(PROMPTS, GOOD, strict=True)))
    criteria = "Which answer is correct?"
    spec["evaluate"] |= {
        "sample_prompts": [],
        "references_path": str(references),
        "suites": [{"kind": "judge", "model": SMOLLM2_135M_INSTRUCT, "criteria": criteria}, {"kind": "diversity"}],
    }
    request = {"spec": spec, "setup": setup, "model_uri": tiny_model_uri, "adapter_uri": champion_adapter, "val_tokens_uri": tokens["val_tokens_uri"]}

    # As a run: the adapter against its base; every answer kept by its line in the references file.
    validate_request(AcceleratorActivity.EVALUATE, request)
    alone = evaluate(request)
    validate_result(AcceleratorActivity.EVALUATE, alone)
    judged_alone, diversity_alone = alone["suites"]["results"]
    assert judged_alone["opponent"] == {"kind": "base"}
    champion_answers = {answer["row"]: answer["answer"] for answer in alone["suites"]["answers"]}
    assert sorted(champion_answers) == [1, 2, 3]
    base_answers = [example["base"] for example in alone["suites"]["examples"]]
    assert judged_alone["tuned"] == judge_scores(local_judge, criteria, PROMPTS, [champion_answers[row] for row in (1, 2, 3)], base_answers)

    # As the champion v4 of a retraining: the challenger answered lines 1 and 3 (its own evaluation's answers).
    challenger = {"champion_version": 4, "answers": [{"row": 1, "answer": GOOD[0]}, {"row": 3, "answer": GOOD[2]}]}
    as_champion = {**request, "challenger": challenger}
    validate_request(AcceleratorActivity.EVALUATE, as_champion)
    scored = evaluate(as_champion)
    validate_result(AcceleratorActivity.EVALUATE, scored)
    judged, diversity = scored["suites"]["results"]
    assert judged["opponent"] == {"kind": "champion", "version": 4}
    assert judged["tuned"] == judge_scores(local_judge, criteria, [PROMPTS[0], PROMPTS[2]], [GOOD[0], GOOD[2]], [champion_answers[1], champion_answers[3]])
    # The champion's own suites are its scores, as before; it answered the same (greedy) as when judged alone.
    assert diversity == diversity_alone
    assert {answer["row"]: answer["answer"] for answer in scored["suites"]["answers"]} == champion_answers


def test_an_evaluate_request_with_malformed_challenger_answers_is_refused_naming_the_field(spec, setup):
    from temporalio.exceptions import ApplicationError

    from tuneflow_activities.payloads import EvaluateRequest, parse

    request = {"spec": spec, "setup": setup, "model_uri": "file:///m", "adapter_uri": "file:///a", "val_tokens_uri": "file:///v"}
    parsed = parse(EvaluateRequest, {**request, "challenger": {"champion_version": 2, "answers": [{"row": 0, "answer": "{}"}]}})
    assert parsed.challenger is not None and parsed.challenger.answers[0].answer == "{}"
    assert parse(EvaluateRequest, request).challenger is None
    with pytest.raises(ApplicationError, match=r"request\.challenger\.answers\[0\]\.row: is missing"):
        parse(EvaluateRequest, {**request, "challenger": {"champion_version": 2, "answers": [{"answer": "{}"}]}})
