"""The import-layer rule: voice/, dialogue/, memory/ and rtc/ never import each other, nor llmasos/."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

LAYERS = ("voice", "dialogue", "memory", "rtc")
FORBIDDEN_FOR_ALL = ("llmasos",)


@dataclass(frozen=True)
class Violation:
    file: Path
    line: int
    layer: str
    imported: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.layer}/ imports {self.imported}"


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def check(root: Path) -> list[Violation]:
    """Every import in a layer package of ``root`` that names another layer or the composition root."""
    violations: list[Violation] = []
    for layer in LAYERS:
        forbidden = {other for other in LAYERS if other != layer} | set(FORBIDDEN_FOR_ALL)
        for file in sorted((root / layer).rglob("*.py")):
            tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
            for line, module in _imported_modules(tree):
                top = module.split(".")[0]
                if top in forbidden:
                    violations.append(Violation(file.relative_to(root), line, layer, module))
    return violations
