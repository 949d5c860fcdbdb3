from bgpctl.cli.main import main

main()
