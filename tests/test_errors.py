"""The status table of llmroute.errors: which class a status and its body become."""
from __future__ import annotations

import json

import pytest

from llmroute import errors
from llmroute.errors import status_error, status_error_class


def openai_body(message, code=None, kind="invalid_request_error"):
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


LITELLM_400 = json.dumps({"error": {
    "message": "{'error': '/chat/completions: Invalid model name passed in model=gpt-9. Call "
               "`/v1/models` to view available models for your key.'}",
    "type": "None", "param": "None", "code": "400"}})


# Recorded from the LiteLLM proxy 1.108.7 on loopback (mock_response models, no network).
LITELLM_1_108_400 = (
    '{"error":{"message":"/chat/completions: Invalid model name passed in model=nope. Call '
    '`/v1/models` to view available models for your key.","type":"invalid_request_error",'
    '"param":null,"code":"400","provider_specific_fields":{"error":"/chat/completions: Invalid '
    'model name passed in model=nope. Call `/v1/models` to view available models for your '
    'key."}}}')


@pytest.mark.parametrize("status, body, expected", [
    (400, LITELLM_1_108_400, errors.ModelNotFoundError),
    # unknown model, on 400 or 404, as real gateways word it
    (400, LITELLM_400, errors.ModelNotFoundError),
    (404, LITELLM_400, errors.ModelNotFoundError),
    (404, openai_body("The model `gpt-9` does not exist or you do not have access to it.",
                      "model_not_found"), errors.ModelNotFoundError),
    (400, openai_body("The model `gpt-9` does not exist"), errors.ModelNotFoundError),
    (400, openai_body("unknown", "model_not_found"), errors.ModelNotFoundError),
    (404, json.dumps({"error": 'model "llama9" not found, try pulling it first'}),
     errors.ModelNotFoundError),
    # a 404 that is not about a model stays a NotFoundError
    (404, json.dumps({"detail": "Not Found"}), errors.NotFoundError),
    (404, "<html>404 page not found</html>", errors.NotFoundError),
    # other 400s still raise BadRequestError (or the context-length class)
    (400, openai_body("'messages' is a required property"), errors.BadRequestError),
    (400, openai_body("model parameter must be a string"), errors.BadRequestError),
    (400, openai_body("This model's maximum context length is 8192 tokens"),
     errors.ContextLengthExceededError),
    # other statuses are unaffected by a model-not-found body
    (403, openai_body("The model `gpt-9` does not exist", "model_not_found"),
     errors.PermissionDeniedError),
    (401, "", errors.AuthenticationError),
    (422, "", errors.UnprocessableEntityError),
    (429, "", errors.RateLimitError),
    (503, "", errors.InternalServerError),
    (418, "", errors.APIStatusError),
])
def test_status_error_class_reads_status_and_body(status, body, expected):
    assert status_error_class(status, body) is expected


@pytest.mark.parametrize("status", [400, 404])
def test_model_not_found_error_keeps_the_real_status_code(status):
    err = status_error(status, body=LITELLM_400, model="gpt-9")
    assert type(err) is errors.ModelNotFoundError
    assert isinstance(err, errors.NotFoundError) and isinstance(err, errors.APIStatusError)
    assert not isinstance(err, errors.BadRequestError)
    assert err.status_code == status
    assert "Invalid model name" in str(err)


def test_model_not_found_error_is_exported():
    import llmroute
    assert llmroute.ModelNotFoundError is errors.ModelNotFoundError
