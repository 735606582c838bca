"""Small fakes shared by unit tests."""

from __future__ import annotations


class Calls:
    """A call failing with `failures` in turn, then answering `answer`; counts its calls."""

    def __init__(self, *failures: BaseException, answer: str = "done") -> None:
        self.failures = list(failures)
        self.answer = answer
        self.count = 0

    async def __call__(self) -> str:
        self.count += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.answer
