print("luatalloc")
