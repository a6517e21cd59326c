
0
bad
name[2JIdentitymissing
[31m*
T0"µ	