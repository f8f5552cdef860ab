"""The one error type of the model-folder checks: which key of the file is wrong, and how."""


class ModelProblem(ValueError):
    """`key` (dotted path inside plans.json, dataset.json or the checkpoint) holds something refused; `by_name`:
    it names code that is not on an allow-list (a folder the user trusts may name it)."""

    def __init__(self, key: str, problem: str, by_name: bool = False):
        super().__init__(f"{key}: {problem}")
        self.key, self.problem, self.by_name = key, problem, by_name
