from donkey.cli.app import main

main()
