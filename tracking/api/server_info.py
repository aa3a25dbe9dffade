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
            "features_enabled": {"gateway": False},
            # What the composition root adds (mlgate: which web UI is served at /, and its version).
            **getattr(request.app.state, "server_info_extra", {}),
        }
    )
