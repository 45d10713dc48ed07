"""The same FastAPI app as a Ray Serve application (``terrawatch serve --ray-serve``).

``serve.ingress`` is given :func:`create_app` bound to the settings (Ray Serve's
builder form): each replica builds the very app ``terrawatch serve`` runs under
uvicorn, and its lifespan opens the OGC API's pool. The builder form is needed
because a FastAPI app object holds thread locks (its router's route cache) and
cannot be pickled to replicas. Replicas ask for no CPU so they never starve
the pipeline's tiling tasks.
"""

from __future__ import annotations


from terrawatch.api.app import create_app
from terrawatch.settings import Settings

APP_NAME = "terrawatch-api"


def build_application(settings: Settings, num_replicas: int = 1):
    """A bound Ray Serve application serving ``create_app(settings)``."""
    from ray import serve

    def build_app():  # a plain function: Ray Serve calls it on each replica
        return create_app(settings)

    @serve.deployment(name=APP_NAME, num_replicas=num_replicas, ray_actor_options={"num_cpus": 0})
    @serve.ingress(build_app)
    class TerrawatchApi:
        pass

    return TerrawatchApi.bind()


def run_on_ray_serve(settings: Settings, host: str, port: int, blocking: bool = False,
                     num_replicas: int = 1) -> str:
    """Deploy on the Ray cluster at ``settings.ray``; return the HTTP base URL of Serve's proxy."""
    from ray import serve

    from terrawatch.tiling.ray_cluster import join_cluster

    join_cluster(settings.ray, settings.ray_driver_env)
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_application(settings, num_replicas), name=APP_NAME, route_prefix="/", blocking=blocking)
    return f"http://{host}:{port}/"


def shutdown() -> None:
    from ray import serve

    serve.delete(APP_NAME)
