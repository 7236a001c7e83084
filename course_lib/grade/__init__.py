"""Batch grading of exercise notebooks, safe against hostile submissions.

The grader process (:mod:`course_lib.grade.runner`) reads each notebook
(:mod:`~course_lib.grade.submission`), never executes it, and starts a child
(:mod:`~course_lib.grade.child`) in a sandbox (:mod:`~course_lib.grade.sandbox`)
that runs the student's cells and calls the student's functions on inputs the
grader chose. The child hands back only plain data (JSON lines and ``.npy``
files); the grader reads them with ``allow_pickle=False``, compares them with
reference answers it computed itself, and writes the gradebook
(:mod:`~course_lib.grade.gradebook`). No verdict computed in the child is trusted.
"""
