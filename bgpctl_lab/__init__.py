"""bgpctl_lab: the reference lab of bgpctl (``pip install 'bgpctl[lab]'``).

The containerlab topology on network namespaces with FRR, faults and impairments, the call meter,
failover drills, the polling helper and the pytest plugin of the lab tests. The product (``bgpctl``)
never imports it; ``bgpctl lab ...`` and ``bgpctl demo`` load it when they run.
"""

# Modules the lab needs beyond bgpctl's own dependencies (the ``lab`` extra); ``bgpctl lab`` checks
# they can be found before it imports anything, and otherwise says how to install them.
REQUIRES = ("netfilterqueue", "pyroute2")
