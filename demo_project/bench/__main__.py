from demo_project.bench.micro import main

main()
