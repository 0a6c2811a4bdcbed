"""The one CUDA check: which torch device a `device` argument ("auto", "cpu", "cuda",
"cuda:N") means here, with a UsageError when CUDA is asked for and absent."""

from __future__ import annotations

from .errors import UsageError


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_device(device=None):
    """torch.device for `device`; None and "auto" mean CUDA when there is one."""
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    if device in (None, "auto"):
        return torch.device("cuda" if cuda_available() else "cpu")
    if not isinstance(device, str):
        raise UsageError(f"device must be auto, cpu, cuda or a torch.device, got {type(device).__name__}")
    from .validate import device_name

    device_name(device)  # 'gpu', 'cuda:x': one sentence rather than torch's list of backends
    if str(device).startswith("cuda") and not cuda_available():
        raise UsageError("device cuda was asked for but CUDA is not available; use --device cpu")
    return torch.device(device)


def gpu_info(device="auto") -> dict | None:
    """Name, memory, CUDA and driver version of the GPU a run on `device` uses; None on the CPU."""
    import subprocess

    import torch

    if str(device) == "cpu" or not cuda_available():
        return None
    info = {"name": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
            "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1), "driver": None}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, check=False, timeout=20).stdout.strip()
        info["driver"] = out.splitlines()[0] if out else None
    except (OSError, subprocess.SubprocessError):
        pass
    return info
