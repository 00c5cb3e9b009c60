from vidsr.cli import main

main()
