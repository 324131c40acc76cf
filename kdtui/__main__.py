from kdtui.cli import main

main()
