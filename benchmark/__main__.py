"""``python -m benchmark ...`` is ``python -m benchmark.run ...``."""

from benchmark.run import main

if __name__ == "__main__":
    main()
