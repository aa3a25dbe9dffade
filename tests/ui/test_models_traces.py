"""Registered models, prompts and traces pages: what each user sees, hidden equals missing, spans as a tree."""

from __future__ import annotations

import os
import re

from tests.tracking.otlp_builders import export_request, make_span, new_otel_trace_id, post_otlp
from tests.ui.conftest import A, new_run, ok

EVIL = "<img src=x onerror=alert(1)>"


def _model(api, name: str, *, prompt: bool = False, run_id: str | None = None) -> None:
    tags = [{"key": "mlflow.prompt.is_prompt", "value": "true"}] if prompt else [{"key": "team", "value": EVIL}]
    ok(api.post(f"{A}/registered-models/create", json={"name": name, "tags": tags}))
    body = {"name": name, "source": f"runs:/{run_id}/model" if run_id else "s3://bucket/model", "run_id": run_id}
    if prompt:
        body = {"name": name, "source": "dummy-source",
                "tags": [{"key": "mlflow.prompt.text", "value": "Summarize {{text}} </script>"},
                         {"key": "mlflow.prompt.is_prompt", "value": "true"}]}
    ok(api.post(f"{A}/model-versions/create", json={k: v for k, v in body.items() if v is not None}))


def test_models_and_prompts_follow_the_callers_grants(ui):
    api = ui["api"]
    run = new_run(api, ui["shared"], "trainer")
    _model(api, "churn-model", run_id=run)
    _model(api, "secret-model")
    _model(api, EVIL)
    _model(api, "summarizer", prompt=True)
    ok(api.post(f"{A}/registered-models/alias", json={"name": "churn-model", "alias": "champion", "version": "1"}))
    ok(api.post(f"{A}/model-versions/transition-stage", json={"name": "churn-model", "version": "1",
                                                               "stage": "Production"}))
    ok(api.post(f"{A}/registered-models/permissions/create",
                json={"name": "churn-model", "username": "reader", "permission": "READ"}))
    reader, nobody, admin = ui["reader"](), ui["nobody"](), ui["admin"]()

    listing = reader.get("/models").text
    assert "churn-model" in listing
    assert "secret-model" not in listing
    assert "summarizer" not in listing
    assert "@champion" in listing
    assert "churn-model" not in nobody.get("/models").text
    everything = admin.get("/models").text
    assert "secret-model" in everything
    assert "summarizer" not in everything
    assert EVIL not in everything
    assert "&lt;img src=x onerror=alert(1)&gt;" in everything
    prompts = admin.get("/prompts").text
    assert "summarizer" in prompts
    assert "churn-model" not in prompts
    assert "summarizer" not in reader.get("/prompts").text

    model = reader.get("/model", params={"name": "churn-model"})
    assert model.status_code == 200
    assert "Production" in model.text
    assert "@champion" in model.text
    assert f'<a href="/runs/{run}">{run}</a>' in model.text  # the version's source run
    assert EVIL not in model.text
    assert ">&lt;img src=x onerror=alert(1)&gt;</td>" in model.text
    hidden = reader.get("/model", params={"name": "secret-model"})
    missing = reader.get("/model", params={"name": "no-such-model"})
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text == missing.text
    prompt = admin.get("/model", params={"name": "summarizer"}).text
    assert "Summarize {{text}} &lt;/script&gt;" in prompt


def _trace(api, experiment_id: str, names: list[tuple[str, int | None]], *, error_at: int | None = None) -> str:
    """A trace whose spans are (name, parent index); returns its MLflow trace id."""
    tid, ids, spans = new_otel_trace_id(), [], []
    start = 1_764_000_000_000_000_000
    for i, (name, parent) in enumerate(names):
        ids.append(os.urandom(8))
        spans.append(make_span(tid, ids[i], name, parent=None if parent is None else ids[parent],
                               start_ns=start + i * 1_000_000, end_ns=start + i * 1_000_000 + (10 - i) * 2_000_000,
                               error=i == error_at))
    response = post_otlp(api, export_request(*spans), experiment_id)
    assert response.status_code == 200, response.text
    return "tr-" + tid.hex()


def test_traces_list_and_span_tree(ui):
    api = ui["api"]
    trace = _trace(api, ui["shared"], [("agent", None), ("retrieve", 0), (EVIL, 1), ("answer", 0)], error_at=3)
    hidden = _trace(api, ui["hidden"], [("hidden-root", None)])
    reader, nobody = ui["reader"](), ui["nobody"]()
    listing = reader.get(f"/experiments/{ui['shared']}/traces")
    assert listing.status_code == 200
    assert f'href="/traces/{trace}"' in listing.text
    assert hidden not in listing.text
    assert nobody.get(f"/experiments/{ui['shared']}/traces").status_code == 404
    page = reader.get(f"/traces/{trace}")
    assert page.status_code == 200
    spans = re.findall(r'<td class="span-name depth-(\d+)">(?:<span class="branch" aria-hidden="true">└</span>)?'
                       r'([^<]*)</td>', page.text)
    # Depth-first: agent, its child retrieve, retrieve's child, then agent's second child.
    assert spans == [("0", "agent"), ("1", "retrieve"), ("2", "&lt;img src=x onerror=alert(1)&gt;"), ("1", "answer")]
    assert "20.0 ms" in page.text  # agent: 10 x 2 ms
    assert "status-ERROR" in page.text
    assert "status-OK" in page.text
    hidden_page, missing_page = reader.get(f"/traces/{hidden}"), reader.get(f"/traces/tr-{'0' * 32}")
    assert hidden_page.status_code == missing_page.status_code == 404
    assert hidden_page.text == missing_page.text
    assert "hidden-root" not in hidden_page.text


MLMODEL = (b"artifact_path: null\nflavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n"
           b"model_id: {id}\nsignature:\n  inputs: '[{\"type\": \"double\", \"name\": \"sepal_length\"}]'\n"
           b"  outputs: '[{\"type\": \"long\"}]'\n")


def _log_model_as_mlflow3(api, experiment_id: str, run_id: str, name: str) -> str:
    """What MLflow 3's ``log_model(name=..., registered_model_name=...)`` sends: a logged model whose files
    live under the model (not the run), the run's output, and a model version sourced from the model."""
    model = ok(api.post(f"{A}/logged-models", json={"experiment_id": experiment_id, "name": name,
                                                    "source_run_id": run_id}))["model"]["info"]
    model_id = model["model_id"]
    for path, body in (("MLmodel", MLMODEL.replace(b"{id}", model_id.encode())),
                       ("requirements.txt", b"scikit-learn\n")):
        put = api.put(f"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/models/{model_id}/artifacts/{path}",
                      content=body)
        assert put.status_code == 200, put.text
    ok(api.patch(f"{A}/logged-models/{model_id}", json={"model_id": model_id, "status": "LOGGED_MODEL_READY"}))
    ok(api.post(f"{A}/runs/outputs", json={"run_id": run_id, "models": [{"model_id": model_id, "step": 0}]}))
    ok(api.post(f"{A}/registered-models/create", json={"name": f"{name}-registered"}))
    ok(api.post(f"{A}/model-versions/create", json={"name": f"{name}-registered", "source": f"models:/{model_id}",
                                                    "run_id": run_id, "model_id": model_id}))
    return model_id


def test_models_logged_with_mlflow3_log_model_name_are_visible(ui):
    # Issue #19: such models were invisible (no logged-model page, no MLmodel, the run said "No artifacts").
    api = ui["api"]
    run = new_run(api, ui["shared"], "trainer")
    model_id = _log_model_as_mlflow3(api, ui["shared"], run, "iris-classifier")
    hidden_run = new_run(api, ui["hidden"], "hidden-trainer")
    hidden_model = _log_model_as_mlflow3(api, ui["hidden"], hidden_run, "hidden-classifier")
    ok(api.post(f"{A}/registered-models/permissions/create", json={
        "name": "iris-classifier-registered", "username": "reader", "permission": "READ"}))
    reader = ui["reader"]()
    run_page = reader.get(f"/runs/{run}")
    assert run_page.status_code == 200
    assert f'href="/logged-models/{model_id}">iris-classifier</a>' in run_page.text
    model_page = reader.get(f"/logged-models/{model_id}")
    assert model_page.status_code == 200, model_page.text
    text = model_page.text
    assert "iris-classifier" in text
    assert "ready" in text
    assert f'href="/runs/{run}"' in text
    assert "sepal_length" in text  # the signature, from the model's MLmodel
    assert "python_function" in text
    assert "requirements.txt" in text
    versions = reader.get("/model", params={"name": "iris-classifier-registered"})
    assert f'href="/logged-models/{model_id}"' in versions.text
    # Another experiment's logged model is missing, like its run.
    assert reader.get(f"/logged-models/{hidden_model}").status_code == 404
    assert reader.get("/logged-models/m-0123456789abcdef0123456789abcdef").status_code == 404
    assert "hidden-classifier" not in reader.get(f"/runs/{run}").text
