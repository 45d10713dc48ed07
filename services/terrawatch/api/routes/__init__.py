"""Router factories ``xxx_router(deps) -> APIRouter`` mounted by :func:`terrawatch.api.app.create_app`."""
