// placeholder: multishot_msg_ring (being written)
