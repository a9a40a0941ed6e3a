// placeholder: multishot_accept_waitid (being written)
