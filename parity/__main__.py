from convert.runtime.fast_exit import exit_now, own_process
from convert.runtime.hugepages import on_huge_pages
from convert.runtime.threads import passive_waits
from parity.cli import main

if __name__ == "__main__":  # not when a spawned worker re-imports the main module
    on_huge_pages()  # malloc on transparent huge pages: a re-exec, once (convert/runtime/hugepages.py)
    own_process()  # a stage past its bound may end this process (convert/runtime/bounds.py)
    passive_waits()  # idle OpenMP workers yield their cores (convert/runtime/threads.py)
    exit_now(main())  # no interpreter teardown: 1.5-2.5 s with TF and torch loaded (convert/runtime/fast_exit.py)
