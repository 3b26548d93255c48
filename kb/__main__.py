import sys

if __name__ == "__main__":  # not when a parser process of `mail import` starts from here (kb.mail.archive)
    from kb.cli import main

    sys.exit(main())
