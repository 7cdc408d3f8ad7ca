"""Labelling config sections, prompt files and the shared fake OpenAI server itself."""

from __future__ import annotations

import json
import urllib.request

import pytest
from pydantic import ValidationError

from definemed.corpus.labelling.prompts import load_template, read_template_file
from definemed.corpus.labelling.schema import SUBDOMAINS
from definemed.corpus.labelling.settings import HfLabellerSettings, LabellingSettings, OpenAILabellerSettings
from tests.openai_fake import FakeOpenAIServer, Reply, ScriptedResponder, ok


def test_settings_dispatch_on_kind_and_reject_mistakes() -> None:
    cfg = LabellingSettings.model_validate({"labeller": {"model": "mixtral"}, "sample": {"n": 260_000}})
    assert isinstance(cfg.labeller, OpenAILabellerSettings) and cfg.max_failure_share == 0.05
    hf = LabellingSettings.model_validate({"labeller": {"kind": "hf", "model": "tiny"}})
    assert isinstance(hf.labeller, HfLabellerSettings)
    with pytest.raises(ValidationError, match="Extra inputs"):
        LabellingSettings.model_validate({"labeller": {"model": "m", "concurrrency": 4}})
    with pytest.raises(ValidationError, match="max_backoff_s must be at least backoff_s"):
        OpenAILabellerSettings(model="m", backoff_s=10, max_backoff_s=1)
    with pytest.raises(ValidationError, match="must differ"):
        HfLabellerSettings(model="m", positive="ja", negative=" ja")
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        LabellingSettings.model_validate({"labeller": {"model": "m"}, "max_failure_share": 2})


@pytest.mark.parametrize("name", ["label_medical_de.md", "label_medical_en.md"])
def test_prompt_files_have_both_answer_sections_and_the_whole_schema(name: str) -> None:
    text = read_template_file(name)
    assert all(f"`{s}`" in text for s in SUBDOMAINS)
    json_prompt, yesno_prompt = load_template(name, "json"), load_template(name, "yesno")
    example = json.loads(json_prompt.strip().splitlines()[-1])
    assert set(example) == {"medical", "edu_score", "subdomain"}
    assert "{document}" in yesno_prompt and "edu_score" in yesno_prompt  # shared rubric
    assert "JSON" not in yesno_prompt.split("{document}")[1] and "<!--" not in json_prompt + yesno_prompt
    with pytest.raises(ValueError, match="has no '<!-- answer: xml -->' section"):
        load_template(name, "xml")


def post(url: str, body: dict) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": "Bearer k"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_fake_server_scripts_records_and_reports_responder_errors() -> None:
    def responder(request: dict, hit: int) -> Reply | tuple:
        if request.get("boom"):
            raise KeyError("boom")
        return (503, "plain text", {"Retry-After": "1"}) if hit == 0 else ok(f"hit {hit}")

    with FakeOpenAIServer(responder, models=["fake-model"]) as server:
        url = server.base_url + "/chat/completions"
        assert post(url, {"messages": []}) == (503, b"plain text")
        status, body = post(url, {"messages": []})
        assert status == 200 and json.loads(body)["choices"][0]["message"]["content"] == "hit 1"
        assert post(url, {"boom": True})[0] == 500 and "KeyError" in server.responder_errors[0]
        with urllib.request.urlopen(server.base_url + "/models", timeout=5) as response:
            assert json.loads(response.read())["data"][0]["id"] == "fake-model"
    assert server.hits == 3 and [r.hit_index for r in server.requests] == [0, 1, 2, -1]
    assert server.requests[0].path == "/v1/chat/completions" and server.authorization_headers() == {"Bearer k"}
    scripted = ScriptedResponder({"<<a>>": [(500, "x"), ok("a")]}, default=ok("other"))
    replies = [scripted({"messages": [{"content": c}]}, 0) for c in ("<<a>>", "<<a>>", "<<a>>", "b")]
    assert [r.status for r in replies] == [500, 200, 200, 200] and scripted.hits == {"<<a>>": 3}
