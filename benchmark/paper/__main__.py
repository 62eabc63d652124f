from benchmark.paper.cli import main

main()
