"""Where a run keeps its checkpoints, and which of them a resume keeps."""

from esforget.core.checkpoints import checkpoint_name, drop_checkpoints_after, list_checkpoints


def test_a_resume_drops_the_checkpoints_after_its_state_whatever_their_number_of_digits(tmp_path):
    for step in (3, 6, 100_000, 123_456):
        (tmp_path / "checkpoints" / checkpoint_name(step)).mkdir(parents=True)
        (tmp_path / "checkpoints" / checkpoint_name(step) / "config.json").write_text("{}")
    drop_checkpoints_after(tmp_path, 6)
    assert [step for step, _ in list_checkpoints(tmp_path / "checkpoints")] == [3, 6]
