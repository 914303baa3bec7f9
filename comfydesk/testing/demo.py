"""The built-in demo engine: the fake ComfyUI with a catalogue of nodes it can really run (procedural images,
no AI model) and sample workflows for it."""

from __future__ import annotations

from pathlib import Path

from comfydesk.testing.app import FakeConfig

__all__ = ["DEMO_STEP_DELAY", "demo_config", "demo_object_info_path", "resources_dir", "sample_workflows_dir"]

#: Seconds per step of DemoPattern on the demo engine: slow enough to watch the progress and previews.
DEMO_STEP_DELAY = 0.12


def resources_dir() -> Path:
    """`resources/` at the repository root, or next to the installed package."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "resources", package / "resources"):
        if (candidate / "demo").is_dir():
            return candidate
    raise FileNotFoundError(f"comfydesk resources not found near {package}")


def demo_object_info_path() -> Path:
    return resources_dir() / "demo" / "object_info.json"


def sample_workflows_dir() -> Path:
    return resources_dir() / "workflows"


def demo_config(data_dir: Path) -> FakeConfig:
    """The demo engine's configuration, keeping its input/output/temp/user folders in `data_dir`."""
    return FakeConfig(
        object_info=demo_object_info_path(),
        data_dir=Path(data_dir),
        step_delay=DEMO_STEP_DELAY,
        demo=True,
    )
