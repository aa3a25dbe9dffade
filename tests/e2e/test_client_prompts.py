"""MLflow 3 prompts through mlgate's registry endpoints, driven by the real client (SQLite and PostgreSQL)."""

from __future__ import annotations

import mlflow
import mlflow.genai
import pytest
from mlflow.exceptions import MlflowException

pytestmark = pytest.mark.e2e


def test_register_load_by_version_and_alias(mlflow_client, unique_name):
    first = mlflow.genai.register_prompt(unique_name, template="Hello {{name}}!", commit_message="v1",
                                         tags={"owner": "team-a"})
    assert first.version == 1
    second = mlflow.genai.register_prompt(unique_name, template=[{"role": "user", "content": "Hi {{name}}"}],
                                          commit_message="chat")
    assert second.version == 2

    loaded = mlflow.genai.load_prompt(f"prompts:/{unique_name}/1")
    assert loaded.template == "Hello {{name}}!"
    assert loaded.format(name="Ada") == "Hello Ada!"
    assert loaded.commit_message == "v1"
    chat = mlflow.genai.load_prompt(f"prompts:/{unique_name}/2")
    assert chat.template == [{"role": "user", "content": "Hi {{name}}"}]

    mlflow.genai.set_prompt_alias(unique_name, alias="production", version=1)
    by_alias = mlflow.genai.load_prompt(f"prompts:/{unique_name}@production")
    assert by_alias.version == 1
    assert by_alias.template == "Hello {{name}}!"
    assert mlflow.genai.load_prompt(f"prompts:/{unique_name}@latest").version == 2
    mlflow.genai.set_prompt_alias(unique_name, alias="production", version=2)
    assert mlflow.genai.load_prompt(f"prompts:/{unique_name}@production", cache_ttl_seconds=0).version == 2
    mlflow.genai.delete_prompt_alias(unique_name, alias="production")
    with pytest.raises(MlflowException):
        mlflow.genai.load_prompt(f"prompts:/{unique_name}@production", cache_ttl_seconds=0)


def test_prompt_tags(mlflow_client, unique_name):
    mlflow.genai.register_prompt(unique_name, template="T {{x}}", tags={"owner": "a"})
    mlflow.genai.set_prompt_tag(unique_name, "env", "prod")
    # The client also links the prompt to the active experiment with a tag of its own.
    tags = mlflow.genai.get_prompt_tags(unique_name)
    assert tags["owner"] == "a"
    assert tags["env"] == "prod"
    mlflow.genai.delete_prompt_tag(unique_name, "owner")
    tags = mlflow.genai.get_prompt_tags(unique_name)
    assert "owner" not in tags
    assert tags["env"] == "prod"
    mlflow.genai.set_prompt_version_tag(unique_name, 1, "reviewed", "yes")
    assert mlflow.genai.load_prompt(f"prompts:/{unique_name}/1", cache_ttl_seconds=0).tags["reviewed"] == "yes"


def test_search_prompts_lists_only_prompts(mlflow_client, unique_name):
    prompt_name, model_name = unique_name + "-prompt", unique_name + "-model"
    mlflow.genai.register_prompt(prompt_name, template="P {{x}}", tags={"suite": unique_name})
    mlflow_client.create_registered_model(model_name, tags={"suite": unique_name})

    prompts = mlflow.genai.search_prompts(filter_string=f"name LIKE '{unique_name}%'")
    assert [p.name for p in prompts] == [prompt_name]
    assert prompts[0].tags["suite"] == unique_name
    by_tag = mlflow.genai.search_prompts(filter_string=f"tags.suite = '{unique_name}'")
    assert [p.name for p in by_tag] == [prompt_name]

    models = mlflow_client.search_registered_models(f"name LIKE '{unique_name}%'")
    assert [m.name for m in models] == [model_name]
    assert mlflow_client.search_model_versions(f"name = '{prompt_name}'") == []


def test_prompt_and_model_names_do_not_mix(mlflow_client, unique_name):
    mlflow_client.create_registered_model(unique_name)
    with pytest.raises(MlflowException):
        mlflow.genai.register_prompt(unique_name, template="x")
    assert mlflow_client.get_registered_model(unique_name).latest_versions == []
