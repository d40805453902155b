"""The teacher-student study (Mondelli & Montanari 2018), on the library.

Networks of the study are the library's 'two_layer' student on the
library's 'teacher_student' task (`algebranets.tasks.teacher_student`, data
in `algebranets.data.teacher_student`), trained by `experiments.train`:
they stay in the library because any workdir of theirs must evaluate with
`experiments.eval` from its config.json alone. What only this study uses
lives here, and nothing in the library imports it:

  design       the study's maths: teacher coefficients, sample budgets in
               units of C(d+3, 3), the width grid
  learners     closed-form learners (mean, least squares, moment tensor)
  closed_form  fit / evaluate / reload a learner; its config schema
  fit          CLI: python -m algebranets.studies.teacher_student.fit
  evaluate     CLI: python -m algebranets.studies.teacher_student.evaluate

`configs/teacher_student.py` builds the run configs and the sweep (whose
closed-form points run through `fit`); docs/studies.md has the results.
"""

from algebranets.studies.teacher_student import closed_form, design, learners

__all__ = ["closed_form", "design", "learners"]
