from ketch.cli import main

main()
