//! Hardware catalog and cluster topology: nodes, fabrics, links, routing.
