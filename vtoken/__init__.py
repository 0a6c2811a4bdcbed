"""vtoken"""
