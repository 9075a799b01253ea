from ksi_multi.cli import main

main()
