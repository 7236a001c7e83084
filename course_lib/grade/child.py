"""The sandboxed child: run a student's cells, call their functions, write plain data.

Run as ``python -I -m course_lib.grade.child BASE`` by the grader, where ``BASE`` is
the grader's root-only folder for this run (``job.json``, ``in/``, ``out/``). Steps:

1. follow the grader in death (a parent-death signal) and join the submission's
   cgroup (:mod:`course_lib.grade.cgroup`) when the grader made one;
2. as root: enter the jail (:mod:`course_lib.grade.jail`): new PID, mount, network
   and IPC namespaces and an allow-listed, read-only root in which only
   ``/sandbox`` (a size-limited tmpfs) is writable;
3. import everything the student may need (torch, numpy, course_lib...) and read
   the inputs while still root, then set resource limits and drop to the job's
   unprivileged uid/gid (with no way back: ``PR_SET_NO_NEW_PRIVS``);
4. execute the student's code cells one by one, each under a time limit,
   catching everything (including ``SystemExit``);
5. for each question and case, call the student's function on the inputs the
   grader wrote and save each output tensor as ``out/{q}_{c}_{k}.npy`` plus one
   JSON line in ``out/log.jsonl``. The grader decides what that is worth.

Everything used after student code has run is bound to local names first.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import traceback
from typing import Dict, Tuple

from course_lib.grade import jail

PRELOAD = (
    "math", "random", "itertools", "functools", "collections", "re", "typing", "dataclasses", "copy",
    "time", "string", "statistics", "fractions", "decimal", "operator", "heapq", "bisect", "enum",
    "contextlib", "warnings", "numbers", "abc", "inspect", "textwrap", "io", "pickle", "struct",
    "numpy", "torch", "torch.nn", "torch.nn.functional", "torch.optim", "matplotlib", "matplotlib.pyplot",
    "course_lib.check", "course_lib.questions",
)


class Limit(BaseException):
    """A cell or case ran past its time limit (a BaseException: `except Exception` cannot catch it)."""


def _limits(job: dict) -> None:
    mb = 1024 * 1024
    for name, value in (
        ("RLIMIT_AS", job["memory_mb"] * mb),
        ("RLIMIT_FSIZE", job["output_mb"] * mb),
        ("RLIMIT_NOFILE", 256),
        ("RLIMIT_CPU", int(job["timeout"]) + 5),
        ("RLIMIT_CORE", 0),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))
    if job.get("uid") is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (job["nproc"], job["nproc"]))


def _drop(job: dict) -> None:
    if job.get("uid") is None or os.getuid() != 0:
        return
    os.setgroups([])
    os.setgid(job["gid"])
    os.setuid(job["uid"])
    jail.no_new_privileges()


class _FakeIPython:
    """``get_ipython()`` inside the grader: shell escapes and magics are skipped,
    except that the body of a ``%%time``/``%%timeit``/``%%capture`` cell still runs."""

    RUN_BODY = ("time", "timeit", "capture")

    def __init__(self, namespace: dict) -> None:
        self.namespace = namespace

    def run_line_magic(self, *args, **kwargs):
        return None

    def run_cell_magic(self, name, line, cell, *args, **kwargs):
        if name in self.RUN_BODY:
            exec(compile(cell, f"<%%{name} cell>", "exec"), self.namespace)
        return None

    def system(self, *args, **kwargs):
        return None

    getoutput = system


def _setup(base: str) -> Tuple[Dict, str, str, str]:
    """Steps 1 and 2: returns the job, a note on the sandbox, and the input and output folders."""
    with open(os.path.join(base, "job.json"), encoding="utf-8") as f:
        job = json.load(f)
    jail.die_with_parent(int(job["parent"]))
    for procs in job.get("cgroup", []):
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    host_in, host_out, host_work = (os.path.join(base, d) for d in ("in", "out", "work"))
    if os.getuid() != 0 or not job.get("isolate", True):
        os.chdir(host_work)
        return job, "not isolated", host_in, host_out
    try:
        note = jail.enter(job, base)  # only the worker comes back from here
        return job, note, jail.IN, jail.OUT
    except jail.JailError as err:  # no namespaces (e.g. a container without CAP_SYS_ADMIN)
        note = f"namespaces unavailable ({err.strerror})"[:80]
    os.chmod(base, 0o711)  # the uid may reach its own folders, which no other uid may enter
    for folder in (host_work, host_out):
        os.chown(folder, job["uid"], job["gid"])
        os.chmod(folder, 0o700)
    os.chdir(host_work)
    return job, note, host_in, host_out


def main(base: str) -> None:
    job, note, in_dir, out_dir = _setup(base)
    here = os.getcwd()
    os.environ.update(HOME=here, MPLCONFIGDIR=os.path.join(here, ".mpl"), MPLBACKEND="Agg",
                      TMPDIR="/tmp" if note == "isolated" else here)
    sys.path.insert(0, here)  # as Jupyter puts the notebook's folder first: modules the notebook writes import
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # a missing optional module is the student's problem, not ours
            pass
    import numpy as np
    import torch

    from course_lib import questions as registry
    from course_lib.check import NotPlainData, to_plain

    registry.all_questions()
    torch.set_num_threads(1)
    questions = [registry.get(qid) for qid in job["questions"]]
    inputs = []
    for qi, q in enumerate(questions):
        cases = []
        for ci in range(job["cases"][qi]):
            with open(os.path.join(in_dir, f"{qi}_{ci}.json"), encoding="utf-8") as f:
                spec = json.load(f)
            cases.append(_decode(spec, np, torch, in_dir))
        inputs.append(cases)

    # bind everything needed after student code runs
    save, write, dumps, getattr_, callable_ = np.save, os.write, json.dumps, getattr, callable
    setitimer, ITIMER_REAL, sig, SIGALRM, exit_ = signal.setitimer, signal.ITIMER_REAL, signal.signal, signal.SIGALRM, os._exit
    # out/ is root-owned and sticky when jailed: the student can add files but not
    # remove or replace this log, which is opened before privileges are dropped
    log_fd = os.open(os.path.join(out_dir, "log.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    join = os.path.join

    def log(entry: dict) -> None:
        write(log_fd, (dumps(entry) + "\n").encode())

    def alarm(signum, frame):
        raise Limit()

    def limited(fn, seconds):
        sig(SIGALRM, alarm)
        setitimer(ITIMER_REAL, seconds)
        try:
            return fn()
        finally:
            setitimer(ITIMER_REAL, 0)

    log({"event": "start", "sandbox": note})
    _limits(job)
    _drop(job)

    me = os.getpid()
    getpid = os.getpid
    skip_cells, skip_questions = set(job.get("skip_cells", [])), set(job.get("skip_questions", []))
    namespace: dict = {"__name__": "__main__"}
    shell = _FakeIPython(namespace)
    namespace["get_ipython"] = lambda: shell
    for i, source in enumerate(job["cells"]):
        if getpid() != me:  # a process the student forked came back into the harness
            exit_(0)
        if i in skip_cells:
            log({"event": "cell", "cell": i + 1, "error": "skipped: this cell stopped an earlier run"})
            continue
        log({"event": "cell-start", "cell": i})
        try:
            code = compile(source, f"<cell {i + 1}>", "exec")
            limited(lambda: exec(code, namespace), job["cell_timeout"])
        except Limit:
            log({"event": "cell", "cell": i + 1, "error": "time limit"})
        except MemoryError:
            log({"event": "cell", "cell": i + 1, "error": "MemoryError"})
        except BaseException as err:  # SystemExit, KeyboardInterrupt and the student's own errors
            log({"event": "cell", "cell": i + 1, "error": f"{type(err).__name__}: {str(err)[:200]}"})

    for qi, q in enumerate(questions):
        if getpid() != me:
            exit_(0)
        func = namespace.get(q.func_name)
        log({"event": "q-start", "q": qi})
        timed_out = False
        for ci, case in enumerate(inputs[qi]):
            entry = {"event": "case", "q": qi, "c": ci}
            if getpid() != me:
                exit_(0)
            if qi in skip_questions:
                entry["error"] = "not run: this question stopped an earlier run (time limit or crash)"
                log(entry)
                continue
            if timed_out:
                entry["error"] = "not run: an earlier case of this question ran out of time"
                log(entry)
                continue
            if func is None or not callable_(func):
                entry["missing"] = True
                log(entry)
                continue
            try:
                outputs = to_plain(limited(lambda: q.call(func, case), job["case_timeout"]))
                for k, t in enumerate(outputs):
                    save(join(out_dir, f"{qi}_{ci}_{k}.npy"), t.numpy(), allow_pickle=False)
                entry["n"] = len(outputs)
            except NotImplementedError:
                entry["not_attempted"] = True
            except Limit:
                entry["error"] = f"did not finish within {job['case_timeout']:g} s"
                timed_out = True
            except MemoryError:
                entry["error"] = "MemoryError (memory limit)"
            except NotPlainData as err:
                entry["error"] = str(err)[:300]
            except BaseException as err:
                entry["error"] = f"raised {type(err).__name__}: {str(err)[:200]}"
            if getpid() != me:
                exit_(0)
            log(entry)
    log({"event": "done"})
    exit_(0)


def _decode(spec, np, torch, in_dir):
    """Rebuild a Case from the grader's JSON + .npy files (plain data only)."""
    from course_lib.questions import Case

    def value(v):
        if isinstance(v, dict) and "npy" in v:
            return torch.from_numpy(np.load(os.path.join(in_dir, os.path.basename(v["npy"])), allow_pickle=False))
        if isinstance(v, dict) and "tuple" in v:
            return tuple(value(x) for x in v["tuple"])
        if isinstance(v, list):
            return [value(x) for x in v]
        return v

    return Case(spec["label"], tuple(value(a) for a in spec["args"]), {k: value(v) for k, v in spec["kwargs"].items()})


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except BaseException:  # a failure of the harness itself: report and leave
        traceback.print_exc()
        os._exit(3)
