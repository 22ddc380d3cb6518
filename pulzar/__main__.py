from pulzar.cli import main

if __name__ == "__main__":  # also keeps worker processes from running the CLI again
    main()
