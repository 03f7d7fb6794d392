"""Knowledge distillation: a smaller student trained to imitate the incoming model (the teacher).

``distill.hinton`` (soft targets, Hinton et al., 2015) and ``distill.fitnets`` (a hint for a middle layer,
then soft targets, Romero et al., 2015); the students are described in :mod:`.student`.
"""
