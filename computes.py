# Computes loaded at start-up, in the seed's format. genisys reads this file
# without executing it: only literal assignments are allowed.

local = {
    "name": "local",
    "connector": "http://127.0.0.1:7051"
}
