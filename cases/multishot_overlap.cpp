// placeholder: multishot_overlap (being written)
