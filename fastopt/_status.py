"""One status table for every driver and solver.

Drivers and solvers return an integer status; :func:`fastopt.minimize` turns
it into ``success`` and ``message`` from this table only, so the wording of a
stop reason lives in one place (scipy's ``_status_message`` does the same).
"""

SUCCESS = 0  # gradient test (gtol) met
MAXITER = 1  # maxiter update steps taken
MAXFEV = 2  # maxfev function evaluations used
NONFINITE_F = 3  # fun returned NaN or inf
NONFINITE_G = 4  # jac returned NaN or inf
NONFINITE_X = 5  # the update produced NaN or inf in x
EPOCHS = 6  # minibatch mode: every requested epoch done
FTOL = 7  # relative reduction of f below ftol
XTOL = 8  # step below xtol
LINESEARCH = 9  # line search / trust update could not make progress
NONFINITE_H = 10  # hessp / curvature product returned NaN or inf
DIVERGED = 11  # f grew far above the best value seen; x is the best iterate
GRADIENT_SHAPE = 12  # jac returned an array of another length than x
CALLBACK = 99  # callback raised StopIteration (scipy's code)

MESSAGES = {
    SUCCESS: "Optimization terminated successfully (gradient inf-norm <= gtol).",
    MAXITER: "Maximum number of iterations has been exceeded.",
    MAXFEV: "Maximum number of function evaluations has been exceeded.",
    NONFINITE_F: "NaN or inf in the objective value; x is the last iterate with finite values.",
    NONFINITE_G: "NaN or inf in the gradient; x is the last iterate with finite values.",
    NONFINITE_X: "The update produced NaN or inf in x; x is the last iterate with finite values.",
    EPOCHS: "Completed the requested number of epochs.",
    FTOL: "Optimization terminated successfully (relative reduction of f <= ftol).",
    XTOL: "Optimization terminated successfully (step size <= xtol).",
    LINESEARCH: "The step could not be improved (line search or damping failed).",
    NONFINITE_H: "NaN or inf in a curvature (Hessian-vector) product; "
    "x is the last iterate with finite values.",
    DIVERGED: "The objective grew far above the best value seen (diverging); "
    "x is the best iterate.",
    GRADIENT_SHAPE: "jac returned an array of another length than x; "
    "x is the last iterate with a gradient of x's length.",
    CALLBACK: "`callback` raised `StopIteration`.",
}

#: statuses that count as ``success=True``
SUCCESSFUL = frozenset({SUCCESS, EPOCHS, FTOL, XTOL})
