
2
v
VariableV2*
dtype0*
shape:	€ 

outIdentityv*
T0"µ	