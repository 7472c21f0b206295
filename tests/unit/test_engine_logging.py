"""vLLM's import-time logging setup must not break Ray Serve's replica log handler (a restarted controller reads
it to recover the replica)."""

from __future__ import annotations

import logging
import logging.config
import logging.handlers
from pathlib import Path

from serving.engine import serve_log_handlers_kept


def test_the_serve_log_handler_survives_a_dict_config(tmp_path: Path) -> None:
    logger = logging.getLogger("ray.serve")
    target = logging.FileHandler(tmp_path / "replica.log")
    memory = logging.handlers.MemoryHandler(capacity=1, target=target, flushLevel=logging.ERROR)
    logger.addHandler(memory)
    try:
        with serve_log_handlers_kept():
            # What `import vllm` does: a dictConfig, which closes every handler in the process.
            logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
            assert memory.target is None
        assert memory.target is target
        assert target.baseFilename == str(tmp_path / "replica.log")  # what Serve's recovery call reads
        logger.error("after the import")
        memory.flush()
        assert "after the import" in (tmp_path / "replica.log").read_text()
    finally:
        logger.removeHandler(memory)
        memory.close()
