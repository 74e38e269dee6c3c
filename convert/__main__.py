from convert.cli import main
from convert.runtime.entry import start
from convert.runtime.fast_exit import exit_now

if __name__ == "__main__":  # not when a spawned worker re-imports the main module
    start()  # huge pages (a re-exec), this process tfport's to end, passive OpenMP waits
    exit_now(main())  # no interpreter teardown: 1.5-2.5 s with TF and torch loaded (convert/runtime/fast_exit.py)
