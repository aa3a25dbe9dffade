"""GET /api/3.0/mlflow/server-info: what the server supports, as MLflow's client asks before some calls."""

from fastapi import APIRouter
from starlette.requests import Request

from tracking.api.responses import ok
from tracking.services import tracking_of

router = APIRouter()


@router.get("/server-info", operation_id="server.info")
def server_info(request: Request):
    """Capabilities in MLflow's field names; nothing secret (this answer needs no login)."""
    return ok(
        {
            "store_type": "SqlStore",
            "workspaces_enabled": tracking_of(request).workspaces_enabled,
            "trace_archival_enabled": False,
            # Uploads always pass through the gateway (authorization, size limit), on local storage and on
            # S3 alike: presigned multipart part URLs would let clients bypass it, so none are offered.
            "multipart_uploads_enabled": False,
            "multipart_downloads_enabled": False,
            "presigned_upload_run_id_supported": False,
            "presigned_upload_model_id_supported": False,
            "model_artifact_presigned_downloads_supported": False,
            # The server proxies artifact storage (MLflow's --serve-artifacts): every transfer passes it.
            "artifact_serving_enabled": True,
            "features_enabled": {"gateway": False, "scheduled_issue_detection": False},
            # MLflow 3.18: the client-side auth provider a server advertises for code snippets (MLflow's
            # MLFLOW_SERVER_INFO_TRACKING_AUTH, "" when unset). mlgate's clients use MLflow's own Basic auth
            # and bearer-token variables, so there is no provider to name.
            "tracking_auth": "",
            # MLflow 3.18: whether artifacts move only through presigned URLs (bypassing the server). Never here:
            # the gateway authorizes and size-limits every transfer.
            "artifacts_presigned_only": False,
            # What the composition root adds (mlgate: which web UI is served at /, and its version).
            **getattr(request.app.state, "server_info_extra", {}),
        }
    )
