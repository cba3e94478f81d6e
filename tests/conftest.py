import os
from pathlib import Path

import pytest
from hypothesis import settings

from tests.shared import REPO
from tests.workflow.e2e import copy_e2e_workflow, run_workflow

PAPER_DATA = Path(os.environ.get("ESFORGET_PAPER_DATA", REPO.parent / "shared" / "paper-data"))
"""The authors' splits: beside the repository, or where ESFORGET_PAPER_DATA points (the mutation
run tests a copy of the tree in `mutants/`, one folder deeper)."""


def pytest_collection_modifyitems(items):
    """A test that takes the `paper_data` fixture is marked `paper_data`, so that
    `-m "not paper_data"` deselects exactly the tests that need the authors' splits."""
    for item in items:
        if "paper_data" in getattr(item, "fixturenames", ()):
            item.add_marker("paper_data")


# Property tests draw the same examples on every run (the suite is deterministic, as the pipeline
# is); HYPOTHESIS_PROFILE=explore searches afresh each time.
settings.register_profile("default", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def paper_data() -> Path:
    """The authors' task splits, which the project must not copy into its own tree."""
    if not PAPER_DATA.is_dir():
        pytest.skip(f"paper splits not found at {PAPER_DATA} (../shared is absent on this machine)")
    return PAPER_DATA


@pytest.fixture(scope="session")
def micro_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer Llama with the tiny character tokenizer, saved as HF dir."""
    from esforget.base import tiny
    from esforget.base.tiny_config import TinyArchitecture
    from esforget.core.models import save_model

    tokenizer = tiny.build_tokenizer()
    arch = TinyArchitecture(hidden_size=16, intermediate_size=32, layers=2, heads=2, max_positions=128)
    model = tiny.build_model(arch, tokenizer, seed=0)
    path = tmp_path_factory.mktemp("micro") / "model"
    save_model(model, tokenizer, path)
    return path


@pytest.fixture(scope="session")
def e2e_run(tmp_path_factory) -> Path:
    """A copy of the workflow with the e2e config, run once, as users run it (profiles/default
    applies). Tests that change it work on a copy of their own."""
    return run_workflow(copy_e2e_workflow(tmp_path_factory.mktemp("workflow")))
