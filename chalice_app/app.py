"""The operator API (AWS Chalice). Routes only; the logic lives in the rumguard core."""

from chalice.app import Chalice

app = Chalice(app_name="rumguard")


@app.route("/health", methods=["GET"])
def health() -> dict[str, str]:
    """Liveness: the function starts and answers."""
    return {"status": "ok"}
