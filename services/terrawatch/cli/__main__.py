from terrawatch.cli import main

main()
