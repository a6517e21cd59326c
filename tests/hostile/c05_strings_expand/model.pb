
2
xConst*
dtype0*
valueB€€€Bx

outIdentityx*
T0"µ	