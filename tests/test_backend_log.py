"""JAX's failed-TPU note is dropped on machines without a TPU, nothing else."""

import logging
import subprocess
import textwrap

import pytest

from algebranets import backend_log
from tests import subprocess_env

_NOTE = (
    "Unable to initialize backend 'tpu': INTERNAL: Failed to open libtpu.so: "
    "libtpu.so: cannot open shared object file: No such file or directory"
)


def _record(message, level=logging.INFO):
  return logging.LogRecord(
      "jax._src.xla_bridge", level, "xla_bridge.py", 849, message, None, None
  )


@pytest.mark.parametrize("attached", [False, True])
def test_filter_drops_only_the_tpu_note_and_only_without_a_tpu(
    monkeypatch, attached
):
  monkeypatch.setattr(backend_log, "_tpu_attached", lambda: attached)
  f = backend_log.MissingTpuFilter()
  assert f.filter(_record(_NOTE)) is attached
  # Other backends' notes and anything above INFO always pass.
  assert f.filter(_record(_NOTE.replace("'tpu'", "'cuda'")))
  assert f.filter(_record(_NOTE, logging.WARNING))
  assert f.filter(_record("TPU-enabled jaxlib or libtpu is not installed"))


def test_install_is_idempotent():
  backend_log.install()
  backend_log.install()
  logger = logging.getLogger("jax._src.xla_bridge")
  assert logger.filters.count(backend_log._FILTER) == 1


_APP = textwrap.dedent("""
    import sys
    from absl import app
    if sys.argv[1] == "algebranets":
      import algebranets  # noqa: F401
    import jax

    def main(argv):
      print(jax.devices()[0].platform)

    app.run(main, argv=sys.argv[:1])
    """)


def test_entry_points_start_without_the_tpu_note(tmp_path):
  if backend_log._tpu_attached():
    pytest.skip("a TPU is attached: the note may be real")
  script = tmp_path / "app.py"
  script.write_text(_APP)
  env = subprocess_env.env()
  del env["JAX_PLATFORMS"]  # let JAX try every backend, TPU included

  def run(mode):
    return subprocess.run(
        [subprocess_env.python(), str(script), mode],
        cwd=subprocess_env.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

  plain = run("jax")
  if "Unable to initialize backend 'tpu'" not in plain.stderr:
    pytest.skip("this JAX does not log the TPU note (no TPU plugin to try)")
  quiet = run("algebranets")
  assert "Unable to initialize backend 'tpu'" not in quiet.stderr
  assert quiet.stdout.strip() == plain.stdout.strip()
