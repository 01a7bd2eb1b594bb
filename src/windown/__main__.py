from windown.cli import main

main()
