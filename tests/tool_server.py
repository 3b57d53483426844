"""A fork server for ``helpers.run_tool``: imports the stack once, then runs each
requested script of ``tools/`` in a forked child, as ``python tools/x.py args`` would.

Starting a tool costs ~7 s of CPU, nearly all of it importing torch, mmengine, mm* and
emo; a fork of a process that already did costs ~0.1 s. The server is single-threaded
and computes nothing, so forking it is safe. Protocol: one JSON request per line on
stdin ``{"path", "args", "cwd", "env", "out", "err"}``; it answers ``{"pid": ...}`` when
the child starts and ``{"rc": ...}`` when it ends (its stdout and stderr are written to
the files ``out`` and ``err``).
"""
import json
import os
import sys


def child(req):
    """Run the tool in this (forked) process and exit with its exit code."""
    import logging
    import runpy
    import traceback
    for fd, path in ((1, req['out']), (2, req['err'])):
        if fd == 2 and path == req['out']:
            os.dup2(1, 2)  # stderr into stdout's file
            continue
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    os.chdir(req['cwd'])
    os.environ.clear()
    os.environ.update(req['env'])
    sys.argv = [req['path'], *req['args']]
    sys.path[0] = os.path.dirname(req['path'])
    code = 0
    try:
        runpy.run_path(req['path'], run_name='__main__')
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: B036 (as the interpreter does: traceback, status 1)
        traceback.print_exc()
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main():
    # import emo imports none of the task packages (emo.registry, emo.lazy); what it
    # imported before is imported here, once (mmdet's models bring mmpretrain's)
    import emo  # noqa: F401
    import emo.apis  # noqa: F401
    import emo.engine  # noqa: F401
    import emo.models.dense_heads  # noqa: F401  (mmdet.models)
    import mmengine.runner  # noqa: F401
    reply = os.fdopen(os.dup(1), 'w', buffering=1)
    os.dup2(2, 1)  # nothing else may write into the reply channel
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(req)
        reply.write(json.dumps(dict(pid=pid)) + '\n')
        _, status = os.waitpid(pid, 0)
        reply.write(json.dumps(dict(rc=os.waitstatus_to_exitcode(status))) + '\n')


if __name__ == '__main__':
    main()
