"""P22 ``video_backend.py``: LLaVA-OneVision-2 subclasses upstream's ``VideoBackend`` (absent on vLLM 0.13.0: its
import failed the file) and registers it with ``VIDEO_LOADER_REGISTRY.register(name, video_processor=...)``. The
runtime half decodes one small video with the back-port on the real pinned vLLM and with upstream's classes in the
reference venv, the default policy and OV2's, and compares frames and HF metadata (skips without the venvs)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from flagos_migrate.migrate import backports

from tests.analysis_helpers import analyze, only
from tests.test_backports import python_of, run_in_pinned_venv

BP = backports.VIDEO_BACKEND
VIDEO = "vllm.multimodal.video"


def test_importing_the_loader_base_needs_the_backport_and_only_that_file_is_repointed():
    assert BP in backports.needed([ast.parse(f"from {VIDEO} import VIDEO_LOADER_REGISTRY, VideoBackend\n")],
                                  pinned_lacks=lambda m, n: n != "VIDEO_LOADER_REGISTRY")
    # upstream's registry alone means upstream's register(); other loader names keep the pinned module
    assert BP in backports.needed([ast.parse(f"from {VIDEO} import VIDEO_LOADER_REGISTRY\n")],
                                  pinned_lacks=lambda m, n: n != "VIDEO_LOADER_REGISTRY")
    assert BP not in backports.needed([ast.parse(f"from {VIDEO} import VideoMediaIO\n")],
                                      pinned_lacks=lambda m, n: False)
    assert BP.local and BP.repoints(VIDEO, "VIDEO_LOADER_REGISTRY") and BP.repoints(VIDEO, "VideoTargetMetadata")


OV2 = '''
from vllm.multimodal.video import VIDEO_LOADER_REGISTRY, VideoBackend


@VIDEO_LOADER_REGISTRY.register("llava_onevision2", video_processor="LlavaOnevision2VideoProcessor")
class LlavaOnevision2VideoBackend(VideoBackend):
    pass


@VIDEO_LOADER_REGISTRY.register("plain")
class Plain(VideoBackend):
    pass
'''


def test_a_processor_binding_keeps_a_warning_naming_how_to_select_the_loader():
    (f,) = [g for g in only(analyze(OV2), "P22") if g.severity == "warning"]  # not on register("plain")
    assert f.line == 5 and "VideoMediaIO" in f.message and "VLLM_VIDEO_LOADER_BACKEND=llava_onevision2" in f.fix
    assert '{"video": {"video_backend": "llava_onevision2"}}' in f.fix


# one 20-frame 32x24 MJPG video (10 fps), each frame a grey level, decoded by both sides
MAKE_VIDEO = '''
import cv2, numpy as np
w = cv2.VideoWriter(PATH, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
for i in range(20):
    w.write(np.full((24, 32, 3), i * 12, np.uint8))
w.release()
'''

# OV2's policy (upstream llava_onevision2.py compute_frames_index_to_sample, its constants inlined)
POLICY = '''
import numpy as np


class Ov2(VideoBackend):
    _sampling_suffix = "_llava_onevision2"

    @classmethod
    def compute_frames_index_to_sample(cls, source, target, **kwargs):
        total = int(source.total_frames_num)
        n = max(2, int(min(min(max(total / source.original_fps * 2.0, 4), 64), total)) // 2 * 2)
        return np.linspace(0, total - 1, n).round().astype(int).tolist()


def run(data):
    out = {}
    for name, cls in (("uniform", VideoBackend), ("ov2", Ov2)):
        frames, meta = cls.load_bytes(data, num_frames=6)
        out[name] = {"shape": list(frames.shape), "means": [float(f.mean()) for f in frames], "meta": meta}
    return out
'''

PINNED = '''
import json
import video_backend as bp
from vllm.multimodal.video import OpenCVVideoBackend, VIDEO_LOADER_REGISTRY as PINNED_REGISTRY, VideoMediaIO
from vllm.multimodal.image import ImageMediaIO
VideoBackend = bp.VideoBackend
PATH = "video.avi"
''' + MAKE_VIDEO + POLICY + '''
data = open(PATH, "rb").read()
out = run(data)
# upstream's default policy is the pinned OpenCV loader's: the same frames and metadata
frames, meta = OpenCVVideoBackend.load_bytes(data, num_frames=6)
out["pinned"] = {"shape": list(frames.shape), "means": [float(f.mean()) for f in frames], "meta": meta}
# registered with upstream's keyword, it is the pinned registry's loader by name (what VideoMediaIO loads)
bp.VIDEO_LOADER_REGISTRY.register("ov2_test", video_processor="Ov2Processor")(Ov2)
io_frames, io_meta = VideoMediaIO(ImageMediaIO(), num_frames=6, video_backend="ov2_test").load_bytes(data)
out["registered"] = [type(PINNED_REGISTRY.load("ov2_test")) is Ov2, io_meta == out["ov2"]["meta"],
                     bp.get_video_loader_backend_for_processor("Ov2Processor")]
print("json " + json.dumps(out))
'''

UPSTREAM = '''
import json
from vllm.multimodal.video import VideoBackend
PATH = "video.avi"
''' + MAKE_VIDEO + POLICY + '''
print(json.dumps(run(open(PATH, "rb").read())))
'''


@pytest.mark.slow
def test_the_backport_decodes_as_upstreams_video_backend_on_the_real_pinned_vllm(tmp_path: Path):
    pinned = json.loads(run_in_pinned_venv(tmp_path, PINNED)["json"])
    # 6 uniform frames of 20: indices 0 3 7 11 15 19, as the pinned OpenCV loader samples them
    assert pinned["uniform"] == pinned["pinned"]
    assert pinned["uniform"]["meta"]["frames_indices"] == [0, 3, 7, 11, 15, 19]
    # OV2's policy: 2 s at 2 fps -> 4 frames, rounded linspace; its suffix names the backend
    assert pinned["ov2"]["meta"]["frames_indices"] == [0, 6, 13, 19]
    assert pinned["ov2"]["meta"]["video_backend"] == "opencv_llava_onevision2"
    assert pinned["registered"] == [True, True, "ov2_test"]
    venv = os.environ.get("MMF_REFERENCE_VENV")
    if not venv:
        pytest.skip("MMF_REFERENCE_VENV (a venv with upstream vLLM) is not set")
    (tmp_path / "upstream.py").write_text(textwrap.dedent(UPSTREAM))
    env = dict(os.environ, VLLM_TARGET_DEVICE="cpu", CUDA_VISIBLE_DEVICES="", VLLM_PLUGINS="")
    proc = subprocess.run([python_of(venv), "upstream.py"], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    upstream = json.loads(proc.stdout.strip().splitlines()[-1])
    assert upstream == {k: pinned[k] for k in ("uniform", "ov2")}
