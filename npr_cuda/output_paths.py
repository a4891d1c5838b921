"""Whether an output can be written where the user asked, checked before any work: a run that
has computed for an hour must not fail on its last line because its folder is missing. Only the
standard library: the tools check their arguments before importing anything heavy."""

import os
from typing import Optional


def file_problem(path: str) -> Optional[str]:
    """Why no file can be written at ``path`` (None: as far as can be told before writing, one
    can): a folder there, its folder missing, not a folder, or not writable."""
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        return "is a folder, not a file"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(folder):
        return f"its folder does not exist ({folder})"
    if not os.path.isdir(folder):
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"its folder is not writable ({folder})"
    return None


def folder_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be made an output folder (None: it can): a file there, or the nearest
    folder above that exists is a file or not writable (the folders between are created)."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            return "is a file, not a folder"
        return None if os.access(path, os.W_OK | os.X_OK) else "is not writable"
    above = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        return f"cannot be made: {above} is a file"
    return None if os.access(above, os.W_OK | os.X_OK) else f"cannot be made: {above} is not writable"
