from pulzar.cli import main

main()
